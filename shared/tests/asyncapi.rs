//! The AsyncAPI document describes exactly the events the code publishes.

use shared::events::ALL_TYPES;

#[test]
fn every_published_event_type_is_in_the_asyncapi_document_and_nothing_else() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.yaml");
    let doc = std::fs::read_to_string(path).expect("docs/asyncapi.yaml exists");
    let addresses: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("address: "))
        // A parameterised address (`job.dispatch.{pool}`) describes the type before it.
        .map(|a| a.split(".{").next().unwrap_or(a))
        .collect();
    for event_type in ALL_TYPES {
        assert!(
            addresses.contains(event_type),
            "{event_type} is not described"
        );
    }
    for address in &addresses {
        assert!(
            ALL_TYPES.contains(address),
            "{address} is described but never published"
        );
    }
    assert!(doc.contains("asyncapi: 3.0.0"));
}
