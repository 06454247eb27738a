//! The gRPC status codes, as plain data (this crate builds for `wasm32-wasip2` and
//! cannot depend on tonic), and the one mapping of a wrapper's HTTP status to the code
//! the host answers for it. The host turns a [`GrpcCode`] into `tonic::Code` by its
//! number.

/// A canonical gRPC status code (`google.rpc.Code`), with its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Its number on the wire.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The code of `number` (`UNKNOWN` for a number that is none, as gRPC reads it).
    pub fn from_number(number: i32) -> GrpcCode {
        use GrpcCode::*;
        const ALL: [GrpcCode; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        usize::try_from(number)
            .ok()
            .and_then(|i| ALL.get(i).copied())
            .unwrap_or(Unknown)
    }

    /// Its canonical name (`RESOURCE_EXHAUSTED`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code for a wrapper's HTTP error status (after the gRPC spec's HTTP mapping,
    /// with the 4xx codes an agent wrapper uses spelled out).
    pub fn of_http_status(status: u16) -> GrpcCode {
        match status {
            400 | 422 => GrpcCode::InvalidArgument,
            // The wrapper authenticates the host, not the caller: a 401 is the host's
            // misconfiguration (reason WRAPPER_REJECTED_HOST).
            401 => GrpcCode::Internal,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::NotFound,
            408 | 504 => GrpcCode::DeadlineExceeded,
            409 => GrpcCode::Aborted,
            // The wrapper's "run canceled" (nginx's client-closed-request).
            499 => GrpcCode::Cancelled,
            412 => GrpcCode::FailedPrecondition,
            413 | 429 => GrpcCode::ResourceExhausted,
            501 => GrpcCode::Unimplemented,
            503 => GrpcCode::Unavailable,
            400..=499 => GrpcCode::FailedPrecondition,
            _ => GrpcCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_statuses_map_to_grpc_codes() {
        for (status, code) in [
            (422, GrpcCode::InvalidArgument),
            (401, GrpcCode::Internal),
            (404, GrpcCode::NotFound),
            (409, GrpcCode::Aborted),
            (413, GrpcCode::ResourceExhausted),
            (418, GrpcCode::FailedPrecondition),
            (499, GrpcCode::Cancelled),
            (500, GrpcCode::Internal),
            (502, GrpcCode::Internal),
            (503, GrpcCode::Unavailable),
            (504, GrpcCode::DeadlineExceeded),
        ] {
            assert_eq!(GrpcCode::of_http_status(status), code, "{status}");
        }
        assert_eq!(GrpcCode::ResourceExhausted.number(), 8);
        assert_eq!(GrpcCode::ResourceExhausted.name(), "RESOURCE_EXHAUSTED");
        for number in 0..=16 {
            assert_eq!(GrpcCode::from_number(number).number(), number);
        }
        assert_eq!(GrpcCode::from_number(17), GrpcCode::Unknown);
        assert_eq!(GrpcCode::from_number(-1), GrpcCode::Unknown);
    }
}
