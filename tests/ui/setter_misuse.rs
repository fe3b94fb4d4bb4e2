use mercure_track::prelude::*;

#[derive(Tracked)]
#[tracked(table = "orders")]
struct Order {
    // A key is never written.
    #[tracked(primary_key, setter = "change_id")]
    id: String,
    // Two setters with one name.
    #[tracked(setter = "set_state")]
    status: String,
    state: String,
    // Not a method name.
    #[tracked(setter = "set state")]
    note: String,
    #[tracked(skip, setter = "set_cache")]
    cache: String,
}

fn main() {}
