use mercure_track_tests::domain::Order;

async fn rename(pool: sqlx::SqlitePool, mut order: Order) {
    let mut pool = pool;
    // A pool is not a tracked session: the write would not be recorded.
    let _ = order.set_status(&mut pool, "READY");
}

fn main() {
    let _ = rename;
}
