use mercure_track::prelude::*;
use mercure_track_tests::domain::ImageUpdate;

struct Service;

#[mercure_autotrack(ImageUpdate)]
impl Service {
    fn run(&mut self) {}
}

#[mercure_autotrack(ImageUpdate)]
fn not_a_service() {}

fn main() {}
