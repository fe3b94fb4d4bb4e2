//! Models and events that only the session and instrumentation tests use. They live here,
//! not in the library's `domain`, because the compile-fail outputs list the library's event
//! types: a new event there would change them.
#![allow(dead_code, reason = "each test binary uses a part")]

use mercure_track::prelude::*;

use mercure_track_tests::domain::Order;

/// An order was removed: a delete event whose only context is the row's own key, so no query
/// can tell that the row is missing.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "order_removed", topic = "orders/{order_id}")]
#[trigger(Order::DELETE)]
pub(crate) struct OrderRemoved {
    /// The order.
    #[context(Order::id)]
    pub(crate) order_id: String,
}

/// The tables of [`Author`] and [`Post`], for the tests that need them (portable SQL).
pub(crate) const BLOG_SCHEMA: &str = "
CREATE TABLE authors (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (
    id BIGINT PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES authors (id),
    title TEXT NOT NULL
);
INSERT INTO authors (id, name) VALUES (2, 'two'), (3, 'three');
INSERT INTO posts (id, author_id, title) VALUES (10, 2, 'ten'), (11, 3, 'eleven');
";

/// An author of posts.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "authors")]
pub(crate) struct Author {
    /// Key.
    #[tracked(primary_key)]
    pub(crate) id: i64,
    /// Name.
    pub(crate) name: String,
}

/// A post of an author.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "posts")]
pub(crate) struct Post {
    /// Key.
    #[tracked(primary_key)]
    pub(crate) id: i64,
    /// The author.
    #[tracked(belongs_to = Author)]
    pub(crate) author_id: i64,
    /// Title.
    pub(crate) title: String,
}

/// A post changed: one context through a join, one the row's own key.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "post_update", topic = "authors/{author_id}/posts/{post_id}")]
#[mercure(private)]
#[trigger(Post::title, Post::author_id)]
pub(crate) struct PostUpdate {
    /// The author.
    #[context(Author::id)]
    pub(crate) author_id: i64,
    /// The post.
    #[context(Post::id)]
    pub(crate) post_id: i64,
}
