use mercure_track::prelude::*;

// The field `r#ref` is `ref` in the JSON, and in placeholders.
#[derive(MercureEvent)]
#[mercure(type = "note", topic = "notes/{r#ref}")]
struct Note {
    r#ref: String,
}

// A keyword that cannot be a field.
#[derive(MercureEvent)]
#[mercure(type = "notes", topic = "notes", collect(Note))]
struct Notes {
    #[mercure(from = "self")]
    refs: Vec<String>,
}

fn main() {}
