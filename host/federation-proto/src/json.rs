//! Conversions between JSON and `google.protobuf.Struct`, the shape of `input_data`
//! and of the structured result in the gRPC API.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// A `Struct` as a JSON object. Fails on numbers JSON cannot hold (NaN, infinities).
pub fn struct_to_json(value: &Struct) -> Result<Map<String, Json>, String> {
    value
        .fields
        .iter()
        .map(|(key, value)| {
            Ok((
                key.clone(),
                value_to_json(value).map_err(|e| format!("{key}: {e}"))?,
            ))
        })
        .collect()
}

/// A `Value` as JSON (an unset kind is null). Fails on non-finite numbers.
pub fn value_to_json(value: &Value) -> Result<Json, String> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => Json::Number(number(*n)?),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .iter()
                .map(value_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(inner)) => Json::Object(struct_to_json(inner)?),
    })
}

/// Largest integer a double holds exactly (2^53).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A protobuf number as JSON: an integral value within 2^53 becomes a JSON integer.
/// Protobuf has only doubles, so `{"budget": 600}` arrives as 600.0; passing that on as
/// `600.0` would hand a Python `float` to an agent whose input says `int`.
fn number(n: f64) -> Result<Number, String> {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        return Ok(Number::from(n as i64));
    }
    Number::from_f64(n).ok_or_else(|| format!("{n} is not a JSON number"))
}

/// A JSON object as a `Struct` (integers become doubles, as protobuf has no other number).
pub fn json_to_struct(object: Map<String, Json>) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(key, value)| (key, json_to_value(value)))
            .collect(),
    }
}

/// JSON as a `Value`.
pub fn json_to_value(value: Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn integral_numbers_stay_integers_and_fractions_stay_fractions() {
        use super::*;
        let json = |n: f64| {
            value_to_json(&Value {
                kind: Some(Kind::NumberValue(n)),
            })
            .unwrap()
            .to_string()
        };
        assert_eq!(json(600.0), "600");
        assert_eq!(json(-3.0), "-3");
        assert_eq!(json(0.5), "0.5");
        assert_eq!(json(1e300), "1e+300"); // beyond 2^53: stays a double
        assert!(
            value_to_json(&Value {
                kind: Some(Kind::NumberValue(f64::NAN))
            })
            .is_err()
        );
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_nested_objects() {
        let original = json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        let Json::Object(map) = original.clone() else {
            unreachable!()
        };
        let back = struct_to_json(&json_to_struct(map)).unwrap();
        assert_eq!(Json::Object(back), original);
    }

    #[test]
    fn rejects_non_finite_numbers() {
        let s = Struct {
            fields: [(
                "x".to_string(),
                Value {
                    kind: Some(Kind::NumberValue(f64::NAN)),
                },
            )]
            .into(),
        };
        assert!(struct_to_json(&s).unwrap_err().starts_with("x:"));
    }
}
