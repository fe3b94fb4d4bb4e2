use mercure_track_tests::domain::Order;

fn main() {
    let _ = Order::id.eq(42);
}
