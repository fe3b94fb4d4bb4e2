use mercure_track::prelude::*;
use mercure_track_tests::domain::ImageUpdate;

#[mercure_autotrack(ImageUpdate)]
struct ColoringGenerationService {
    session: sqlx::SqlitePool,
}

#[mercure_autotrack]
impl ColoringGenerationService {}

fn main() {}
