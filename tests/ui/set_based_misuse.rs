use mercure_track::Model;
use mercure_track_sqlx::BoundValue;
use mercure_track_tests::domain::{ColoringVersion, Order};

type V = BoundValue<sqlx::Sqlite>;

fn main() {
    // A value of the wrong type for the column.
    let _ = ColoringVersion::update::<V>().set(ColoringVersion::status, 42);
    // A column of another model.
    let _ = ColoringVersion::update::<V>().set(Order::status, "DONE");
    // The primary key is never assigned.
    let _ = ColoringVersion::update::<V>().set(ColoringVersion::id, 7);
    // A key list of the wrong type.
    let _ = Order::delete_where::<V>().filter(Order::id.in_keys([1, 2]));
    // A condition on another model.
    let _ = Order::update::<V>()
        .set(Order::status, "DONE")
        .filter(ColoringVersion::status.is("DONE"));
}
