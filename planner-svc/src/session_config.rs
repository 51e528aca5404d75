//! What is fixed for a session, stored as its experiment's `config_json` so that a resumed
//! session runs with the same settings and an export shows them: plain JSON, with the job
//! limits and the early-stopping rule in their proto3 JSON form (the canonical mapping, as
//! grpcurl prints them). A stored value that does not read is an error, never a default.

use prost_reflect::{DescriptorPool, DynamicMessage};
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as ev;
use serde::{Deserialize, Serialize};

use crate::config::LlmConfig;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    pub strategy: String,
    pub seed: u64,
    pub llm: LlmConfig,
    pub max_epochs: u32,
    pub max_parameters: u64,
    pub max_flops_per_sample: u64,
    pub offline: bool,
    /// `ResourceLimits` of every job; `None` for the sandbox's defaults.
    #[serde(default, with = "proto_json")]
    pub limits: Option<common::ResourceLimits>,
    /// `EarlyStopping` of every evaluation; `None` for none.
    #[serde(default, with = "proto_json")]
    pub early_stopping: Option<ev::EarlyStopping>,
    pub planner_version: String,
    /// Training device of every evaluation; "" for the evaluator's default. Absent in the
    /// configurations of sessions started before devices could be chosen.
    #[serde(default)]
    pub device: String,
    /// Whether the request named `max_epochs`; otherwise the session scales it to the
    /// training set (small sets train longer).
    #[serde(default)]
    pub max_epochs_explicit: bool,
}

impl SessionConfig {
    /// The stored form.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("session configuration: {e}"))
    }

    /// Reads a stored configuration; `Ok(None)` when there is none (an experiment another
    /// program created), an error naming the problem when it does not read.
    pub fn from_json(text: &str) -> Result<Option<Self>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("its configuration does not read as a planner-svc session's: {e}"))
    }
}

/// Messages stored in proto3 JSON, by their full protobuf name.
pub trait ProtoName: prost::Message + Default {
    const FULL_NAME: &'static str;
}

impl ProtoName for common::ResourceLimits {
    const FULL_NAME: &'static str = "ra.common.v1.ResourceLimits";
}

impl ProtoName for ev::EarlyStopping {
    const FULL_NAME: &'static str = "ra.evaluator.v1.EarlyStopping";
}

/// serde for `Option<M>` as proto3 JSON (`null` for `None`).
mod proto_json {
    use std::sync::LazyLock;

    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{DescriptorPool, DynamicMessage, ProtoName};

    static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
        DescriptorPool::decode(ra_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    });

    fn descriptor<M: ProtoName>() -> Result<prost_reflect::MessageDescriptor, String> {
        let pool = POOL.as_ref().map_err(Clone::clone)?;
        pool.get_message_by_name(M::FULL_NAME)
            .ok_or_else(|| format!("{} is not in the contract", M::FULL_NAME))
    }

    pub fn serialize<M: ProtoName, S: Serializer>(
        value: &Option<M>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(message) = value else {
            return serializer.serialize_none();
        };
        let descriptor = descriptor::<M>().map_err(S::Error::custom)?;
        let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
            .map_err(S::Error::custom)?;
        dynamic.serialize(serializer)
    }

    pub fn deserialize<'de, M: ProtoName, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<M>, D::Error> {
        let Some(value) = Option::<serde_json::Value>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let descriptor = descriptor::<M>().map_err(D::Error::custom)?;
        let dynamic = DynamicMessage::deserialize(descriptor, value)
            .map_err(|e| D::Error::custom(format!("{}: {e}", M::FULL_NAME)))?;
        dynamic
            .transcode_to::<M>()
            .map(Some)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_early_stopping_are_readable_json_and_read_back() {
        let config = SessionConfig {
            strategy: "evolution".into(),
            limits: Some(common::ResourceLimits {
                memory_bytes: 512 << 20,
                timeout_seconds: 90,
                ..Default::default()
            }),
            early_stopping: Some(ev::EarlyStopping {
                enabled: true,
                percentile: 50.0,
                min_epochs: 2,
                min_trials: 3,
            }),
            ..SessionConfig::default()
        };
        let text = config.to_json().expect("stored");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            value["limits"]["memoryBytes"],
            serde_json::json!("536870912"),
            "{text}"
        );
        assert_eq!(
            value["limits"]["timeoutSeconds"],
            serde_json::json!("90"),
            "{text}"
        );
        assert_eq!(
            value["early_stopping"]["minTrials"],
            serde_json::json!(3),
            "{text}"
        );
        assert_eq!(SessionConfig::from_json(&text), Ok(Some(config)));
        assert_eq!(SessionConfig::from_json(""), Ok(None));
        let plain = SessionConfig::default().to_json().expect("stored");
        assert!(plain.contains("\"limits\":null"), "{plain}");
    }

    #[test]
    fn a_bad_stored_value_is_an_error_not_a_default() {
        let mut value = serde_json::to_value(SessionConfig::default()).expect("value");
        value["limits"] = serde_json::json!({"memoryBytes": "lots"});
        let error = SessionConfig::from_json(&value.to_string()).expect_err("refused");
        assert!(error.contains("ResourceLimits"), "{error}");
        value["limits"] = serde_json::json!("0a0b");
        assert!(
            SessionConfig::from_json(&value.to_string()).is_err(),
            "the old hex form"
        );
    }
}
