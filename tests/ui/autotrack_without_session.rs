use mercure_track::prelude::*;
use mercure_track_tests::domain::ImageUpdate;

#[mercure_autotrack(ImageUpdate)]
struct ColoringGenerationService {
    db: String,
}

fn main() {}
