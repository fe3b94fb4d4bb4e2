//! The SQL text of the session, one module per concern. Values are always bound (`$N`), never
//! written into the text; identifiers come from the derive, which accepts only plain names.

pub(crate) mod set_based;
