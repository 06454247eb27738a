"""Unit tests of app.py's mapping logic on plain CPython, with the host imports stubbed.

Needs the componentize-py bindings on the path; scripts/build-python-adapter.sh generates
them and runs these tests before building the component.
"""

import json
import unittest
from unittest import mock

from componentize_py_types import Err
from wit_world.imports import interaction, types, upstream
from wit_world.imports import outbound_http as http

import app


def task(**overrides) -> types.Task:
    fields = dict(
        goal="plan a trip",
        context="two days",
        input_data='{"city": "Lyon"}',
        federation_session_id="s-1",
        request_id="r-1",
        metadata=[("team", "a")],
        wrapper_url="http://127.0.0.1:8080",
        deadline_ms=5000,
    )
    fields.update(overrides)
    return types.Task(**fields)


def reply(
    status=200,
    body=b'{"output": "done", "resumed": true, "federation_session_id": "s-1"}',
    headers=(),
):
    return http.Response(status=status, headers=list(headers), body=body)


class RunTaskTest(unittest.TestCase):
    def setUp(self):
        self.sent: list[http.Request] = []
        self.answer = reply()
        patch_send = mock.patch.object(http, "send", side_effect=self._send)
        patch_log = mock.patch.object(app.log, "log")
        patch_send.start()
        patch_log.start()
        # A plain task by default: the backend's default agent, nothing to resume.
        self.agent = mock.patch.object(interaction, "agent", return_value="").start()
        self.resume = mock.patch.object(interaction, "resume_json", return_value=None).start()
        self.input_required = mock.patch.object(interaction, "input_required").start()
        self.report = mock.patch.object(upstream, "report").start()
        self.addCleanup(mock.patch.stopall)

    def _send(self, request):
        self.sent.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def run_task(self, t=None):
        return app.WitWorld().run_task(t or task())

    def error_of(self, t=None):
        with self.assertRaises(Err) as caught:
            self.run_task(t)
        return caught.exception.value

    def test_describe(self):
        info = app.WitWorld().describe()
        self.assertEqual(
            (info.name, info.version, info.framework, info.route),
            ("http-agent", "0.2.0", "http-agent", "/v1/run_graph"),
        )

    def test_posts_the_wrapper_body_to_the_default_route(self):
        response = self.run_task()
        [request] = self.sent
        self.assertEqual(request.method, http.Method.POST)
        self.assertEqual(request.url, "http://127.0.0.1:8080/v1/run_graph")
        self.assertEqual(request.timeout_ms, 5000)
        self.assertIn(("content-type", "application/json"), request.headers)
        self.assertNotIn("traceparent", {name for name, _ in request.headers})
        self.assertEqual(
            json.loads(request.body),
            {
                "goal": "plan a trip",
                "context": "two days",
                "input_data": {"city": "Lyon"},
                "federation_session_id": "s-1",
                "request_id": "r-1",
                "metadata": {"team": "a"},
            },
        )
        self.assertEqual(
            (response.output, response.resumed, response.federation_session_id),
            ("done", True, "s-1"),
        )
        self.assertEqual(json.loads(response.result_json)["output"], "done")

    def test_route_from_metadata(self):
        self.run_task(task(metadata=[("http_agent.route", "/v1/run_crew")], deadline_ms=None))
        self.assertEqual(self.sent[0].url, "http://127.0.0.1:8080/v1/run_crew")
        self.assertIsNone(self.sent[0].timeout_ms)

    def test_bad_route_is_invalid_input(self):
        for route in ["v1/run", "//evil.example/x", "/a b", "/x?y=1", "/" + "a" * 300]:
            error = self.error_of(task(metadata=[("http_agent.route", route)]))
            self.assertIsInstance(error, types.AdapterError_InvalidInput, route)
        self.assertEqual(self.sent, [])

    def test_input_data_must_be_an_object(self):
        for data in ["[1]", "not json"]:
            self.assertIsInstance(
                self.error_of(task(input_data=data)), types.AdapterError_InvalidInput
            )

    def test_non_2xx_is_upstream_status_with_the_wrappers_message(self):
        self.answer = reply(422, b'{"error": {"code": "invalid_input", "message": "goal blank"}}')
        error = self.error_of()
        self.assertIsInstance(error, types.AdapterError_UpstreamStatus)
        # The message is the wrapper's; its code travels as data (`upstream.report`).
        self.assertEqual((error.value.status, error.value.message), (422, "goal blank"))
        self.report.assert_called_once_with(upstream.WrapperError("invalid_input", None))
        self.answer = reply(500, b"x" * 2000)
        message = self.error_of().value.message
        self.assertTrue(message.endswith("…") and len(message.encode()) <= 512 + 3, message)

    def test_the_wrappers_code_and_retry_after_are_reported_like_the_rust_adapters(self):
        """The cases federation-wire's `WrapperError::from_reply` reads (error.rs): the host
        gets the same code and seconds, so the same ErrorInfo.reason and RetryInfo."""
        overloaded = b'{"error": {"code": "overloaded", "message": "queue full"}}'
        busy = b'{"error": {"code": "session_busy", "message": "busy"}}'
        date = [("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")]
        cases = [
            (503, overloaded, [("retry-after", "7")], "overloaded", 7, "queue full"),
            (503, overloaded, [("retry-after", " 7 ")], "overloaded", 7, "queue full"),
            # An HTTP date, or no header: the code alone.
            (503, overloaded, date, "overloaded", None, "queue full"),
            (409, busy, [], "session_busy", None, "busy"),
            # No code, or not a code: an empty one.
            (500, b"Traceback: boom", [("retry-after", "3")], "", 3, "Traceback: boom"),
            (409, b'{"error": {"code": "Busy", "message": "x"}}', [], "", None, "x"),
            (409, b'{"error": {"code": "not a code", "message": "x"}}', [], "", None, "x"),
            (409, b'{"error": {"code": 7, "message": "x"}}', [], "", None, "x"),
            (409, b'{"error": {"code": "' + b"x" * 65 + b'"}}', [], "", None, None),
            (404, b'{"detail": "Not Found"}', [], "", None, "Not Found"),
            (500, b'{"error": {"code": "x"}}', [], "x", None, '{"code":"x"}'),
        ]
        for status, body, headers, code, seconds, message in cases:
            self.report.reset_mock()
            self.answer = reply(status, body, headers)
            error = self.error_of()
            self.assertIsInstance(error, types.AdapterError_UpstreamStatus, body)
            self.assertEqual(error.value.status, status)
            if message is not None:
                self.assertEqual(error.value.message, message)
            self.report.assert_called_once_with(upstream.WrapperError(code, seconds))

    def test_retry_after_is_whole_seconds_only(self):
        self.assertIsNone(app.retry_after_seconds(str(2**64)))
        self.assertEqual(app.retry_after_seconds("+5"), 5)
        self.assertIsNone(app.retry_after_seconds("-1"))
        self.assertIsNone(app.retry_after_seconds("1.5"))

    def test_a_successful_reply_reports_nothing(self):
        self.run_task()
        self.report.assert_not_called()

    def test_transport_and_timeout_keep_their_kind(self):
        cases = [
            (http.HttpError_Transport("refused"), types.AdapterError_Transport),
            (http.HttpError_Timeout("slow"), types.AdapterError_Timeout),
            (http.HttpError_Denied("origin"), types.AdapterError_Internal),
            (http.HttpError_TooLarge(10), types.AdapterError_Internal),
        ]
        for http_error, expected in cases:
            self.answer = Err(http_error)
            self.assertIsInstance(self.error_of(), expected)

    def test_bad_reply_is_internal(self):
        for body in [b"<html>", b"[1, 2]", b'{"no_output": 1}']:
            self.answer = reply(body=body)
            self.assertIsInstance(self.error_of(), types.AdapterError_Internal, body)

    def test_passes_the_agent_and_the_resume_answer(self):
        self.agent.return_value = "trip_planner"
        self.resume.return_value = '{"approved": true}'
        self.run_task()
        body = json.loads(self.sent[0].body)
        self.assertEqual((body["agent"], body["resume"]), ("trip_planner", {"approved": True}))
        # JSON null is an answer too: the key is sent.
        self.agent.return_value = ""
        self.resume.return_value = "null"
        self.run_task()
        body = json.loads(self.sent[1].body)
        self.assertNotIn("agent", body)
        self.assertIsNone(body["resume"])
        self.assertIn("resume", body)
        self.input_required.assert_not_called()

    def test_a_reply_asking_for_input_reports_its_interrupt(self):
        self.answer = reply(
            body=b'{"output": "", "status": "input_required", "interrupt": {"q": "city?"}}'
        )
        response = self.run_task()
        self.input_required.assert_called_once_with('{"q":"city?"}')
        self.assertEqual(response.output, "")

    def test_reply_defaults(self):
        self.answer = reply(body=b'{"output": {"a": 1}}')
        response = self.run_task()
        self.assertEqual(
            (response.output, response.resumed, response.federation_session_id),
            ('{"a":1}', False, "s-1"),
        )


if __name__ == "__main__":
    unittest.main()
