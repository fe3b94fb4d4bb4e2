use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

// A repository trait of the user's with a `find` of its own.
trait OrderRepository {
    fn find(session: &mut String, id: &str) -> Self;
}

impl OrderRepository for Order {
    fn find(_: &mut String, id: &str) -> Self {
        Order { id: id.into(), status: String::new(), note: None }
    }
}

fn main() {
    let mut session = String::new();
    // Both traits are in scope: the compiler asks, it does not pick the generated one.
    let _ = Order::find(&mut session, "abc");
}
