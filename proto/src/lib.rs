//! The v1 protobuf contracts of Research Agent and their generated code.
//!
//! Every service's messages, client and server live in `ra::<service>::v1`; the shared
//! messages in [`common::v1`]. [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of all of
//! them (with their imports), for server reflection and for dynamic JSON encoding.

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `google.protobuf.FileDescriptorSet` of every contract, imports included.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ra_descriptor.bin"));

/// Shared messages: model and training specs, goals, limits, states, metric points.
pub mod common {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.common.v1");
    }
}

/// dataset-svc: catalog, preparation, batch streaming.
pub mod dataset {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.dataset.v1");
    }
}

/// sandbox-svc: static checks and isolated job execution.
pub mod sandbox {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.sandbox.v1");
    }
}

/// evaluator-svc: multi-seed evaluation and statistics.
pub mod evaluator {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.evaluator.v1");
    }
}

/// registry-svc: the system of record.
pub mod registry {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.registry.v1");
    }
}

/// planner-svc: research sessions.
pub mod planner {
    #[allow(clippy::all)] // generated code
    pub mod v1 {
        tonic::include_proto!("ra.planner.v1");
    }
}

/// Fully qualified gRPC service names, as health checks and reflection list them.
pub mod service_names {
    pub const DATASET: &str = "ra.dataset.v1.DatasetService";
    pub const SANDBOX: &str = "ra.sandbox.v1.SandboxService";
    pub const EVALUATOR: &str = "ra.evaluator.v1.EvaluatorService";
    pub const REGISTRY: &str = "ra.registry.v1.RegistryService";
    pub const PLANNER: &str = "ra.planner.v1.PlannerService";
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_holds_every_service_and_its_imports() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service
                    .iter()
                    .map(move |service| format!("{package}.{}", service.name()))
            })
            .collect();
        for name in [
            super::service_names::DATASET,
            super::service_names::SANDBOX,
            super::service_names::EVALUATOR,
            super::service_names::REGISTRY,
            super::service_names::PLANNER,
        ] {
            assert!(
                services.iter().any(|s| s == name),
                "{name} missing from {services:?}"
            );
        }
        assert!(
            set.file
                .iter()
                .any(|f| f.name() == "google/protobuf/timestamp.proto"),
            "imports must be included for reflection"
        );
    }
}
