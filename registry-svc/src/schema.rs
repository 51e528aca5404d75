//! Reflection over the contracts (prost-reflect on the embedded descriptor set): protobuf-JSON
//! rendering of stored records for export, and a generic scan for non-finite numbers.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(ra_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set built into ra-proto is valid")
});

fn descriptor(full_name: &str) -> MessageDescriptor {
    POOL.get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is part of the compiled contracts"))
}

/// Decodes an encoded record of type `full_name` (e.g. `ra.registry.v1.Trial`) into JSON.
pub fn record_to_json(
    full_name: &str,
    encoded: &[u8],
) -> Result<serde_json::Value, prost::DecodeError> {
    let message = DynamicMessage::decode(descriptor(full_name), encoded)?;
    Ok(serde_json::to_value(&message).unwrap_or(serde_json::Value::Null))
}

/// The path of the first NaN or infinite float in `message` of type `full_name`, if any
/// ("train.learning_rate").
pub fn first_non_finite(full_name: &str, message: &impl prost::Message) -> Option<String> {
    let dynamic =
        DynamicMessage::decode(descriptor(full_name), message.encode_to_vec().as_slice()).ok()?;
    find_non_finite(&dynamic, "")
}

fn find_non_finite(message: &DynamicMessage, prefix: &str) -> Option<String> {
    for (field, value) in message.fields() {
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        if let Some(found) = non_finite_in_value(value, &path) {
            return Some(found);
        }
    }
    None
}

fn non_finite_in_value(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::F64(number) if !number.is_finite() => Some(path.to_owned()),
        Value::F32(number) if !number.is_finite() => Some(path.to_owned()),
        Value::Message(inner) => find_non_finite(inner, path),
        Value::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| non_finite_in_value(item, &format!("{path}[{index}]"))),
        Value::Map(entries) => entries.iter().find_map(|(key, item)| {
            let key = match key {
                prost_reflect::MapKey::String(text) => text.clone(),
                other => format!("{other:?}"),
            };
            non_finite_in_value(item, &format!("{path}[{key:?}]"))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use ra_proto::common::v1::{Aggregate, TrainSpec};

    use super::*;

    #[test]
    fn finds_nested_non_finite_numbers() {
        let spec = TrainSpec {
            learning_rate: f64::NAN,
            ..Default::default()
        };
        assert_eq!(
            first_non_finite("ra.common.v1.TrainSpec", &spec).as_deref(),
            Some("learning_rate")
        );
        let fine = Aggregate {
            mean: 0.5,
            ci_low: 0.4,
            ci_high: 0.6,
            ..Default::default()
        };
        assert_eq!(first_non_finite("ra.common.v1.Aggregate", &fine), None);
        let bad = Aggregate {
            ci_high: f64::INFINITY,
            ..Default::default()
        };
        assert_eq!(
            first_non_finite("ra.common.v1.Aggregate", &bad).as_deref(),
            Some("ci_high")
        );
    }
}
