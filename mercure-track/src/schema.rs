//! JSON Schemas of the events, for frontend type generators.

use schemars::{Schema, SchemaGenerator, json_schema};

use crate::event::MercureEvent;
use crate::registry;

/// The JSON Schema of one event's body.
pub fn event_schema<E: MercureEvent>() -> Schema {
    let mut generator = SchemaGenerator::default();
    let mut schema = E::json_schema(&mut generator);
    attach_definitions(&mut schema, generator);
    schema
}

/// The schema of every registered individual and batch event: a `oneOf` over the bodies,
/// discriminated by `type`. Each body is under `$defs` by its Rust name.
pub fn all_events_schema() -> Schema {
    let mut generator = SchemaGenerator::default();
    let mut one_of = Vec::new();
    let mut defs = serde_json::Map::new();
    let mut mapping = serde_json::Map::new();
    for descriptor in registry::events() {
        let body = (descriptor.json_schema)(&mut generator);
        let reference = format!("#/$defs/{}", descriptor.rust_name);
        defs.insert(descriptor.rust_name.to_owned(), body.to_value());
        mapping.insert(descriptor.type_name.to_owned(), reference.clone().into());
        one_of.push(serde_json::json!({ "$ref": reference }));
    }
    for (name, definition) in generator.take_definitions(true) {
        defs.entry(name).or_insert(definition);
    }
    json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MercureEvent",
        "oneOf": one_of,
        "discriminator": { "propertyName": "type", "mapping": mapping },
        "$defs": defs,
    })
}

/// The schema of a body (used by generated code): an object with `type` fixed to `type_name`
/// and the given properties, all required, no others.
#[doc(hidden)]
pub fn object_schema(
    rust_name: &str,
    type_name: &str,
    properties: Vec<(&'static str, Schema)>,
) -> Schema {
    let mut props = serde_json::Map::new();
    props.insert(
        "type".to_owned(),
        serde_json::json!({ "type": "string", "const": type_name }),
    );
    let mut required = vec![serde_json::Value::from("type")];
    for (name, schema) in properties {
        props.insert(name.to_owned(), schema.to_value());
        required.push(name.into());
    }
    json_schema!({
        "title": rust_name,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn attach_definitions(schema: &mut Schema, mut generator: SchemaGenerator) {
    let defs = generator.take_definitions(true);
    if !defs.is_empty() {
        schema.insert("$defs".to_owned(), serde_json::Value::Object(defs));
    }
}

/// An OpenAPI 3.1 document with every registered event under `components/schemas` and the
/// union as `MercureEvent`, for generators such as Orval. `path` documents the update stream
/// (`GET` returning the union); `title` and `version` fill `info`.
pub fn openapi_document(title: &str, version: &str, path: &str) -> serde_json::Value {
    let union = all_events_schema().to_value();
    let mut schemas = serde_json::Map::new();
    if let Some(serde_json::Value::Object(defs)) = union.get("$defs") {
        for (name, schema) in defs {
            schemas.insert(name.clone(), rewrite_refs(schema.clone()));
        }
    }
    let mut event_union = union;
    if let Some(object) = event_union.as_object_mut() {
        object.remove("$defs");
        object.remove("$schema");
    }
    schemas.insert("MercureEvent".to_owned(), rewrite_refs(event_union));
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": {
            path: {
                "get": {
                    "operationId": "mercureEvents",
                    "summary": "The JSON data of the Mercure updates this application publishes",
                    "responses": {
                        "200": {
                            "description": "One event",
                            "content": {
                                "application/json": {
                                    "schema": { "$ref": "#/components/schemas/MercureEvent" }
                                }
                            }
                        }
                    }
                }
            }
        },
        "components": { "schemas": schemas },
    })
}

/// Points `#/$defs/X` references at `#/components/schemas/X`.
fn rewrite_refs(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(object) => serde_json::Value::Object(
            object
                .into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref" | "mapping", serde_json::Value::String(reference)) => (
                        key,
                        serde_json::Value::String(
                            reference.replace("#/$defs/", "#/components/schemas/"),
                        ),
                    ),
                    (_, value) => (key, rewrite_refs(value)),
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(rewrite_refs).collect())
        }
        serde_json::Value::String(text) if text.starts_with("#/$defs/") => {
            serde_json::Value::String(text.replace("#/$defs/", "#/components/schemas/"))
        }
        other => other,
    }
}
