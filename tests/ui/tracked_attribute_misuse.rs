use mercure_track::prelude::*;

// Keys in the wrong place, flags given values, a bad column name, two keys.
#[derive(Tracked)]
#[tracked(table = "orders", primary_key)]
struct Order {
    #[tracked(primary_key, table = "x")]
    id: String,
    #[tracked(skip = true)]
    note: String,
    #[tracked(column = "bad name")]
    status: String,
    #[tracked(primary_key)]
    other_key: String,
}

// A skipped field cannot be a key or a foreign key; two fields cannot share a column.
#[derive(Tracked)]
#[tracked(table = "items")]
struct Item {
    #[tracked(primary_key, skip)]
    id: i64,
    #[tracked(column = "name")]
    title: String,
    name: String,
}

// Not a struct with named fields; generic.
#[derive(Tracked)]
#[tracked(table = "pairs")]
struct Pair(i64, i64);

#[derive(Tracked)]
#[tracked(table = "kinds")]
enum Kind {
    A,
}

#[derive(Tracked)]
#[tracked(table = "boxes")]
struct Boxed<T> {
    #[tracked(primary_key)]
    id: T,
}

fn main() {}
