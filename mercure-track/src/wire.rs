//! The Mercure wire format common to both protocol generations: updates and their form
//! encoding. What differs between the generations (tokens, matchers, subscribe parameters,
//! cookies) is in [`crate::protocol`].

/// One Mercure update: what a publisher POSTs to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// The topics; the hub requires at least one. The first is the canonical topic, the
    /// others are alternate topics.
    pub topics: Vec<String>,
    /// The `data` field: the event JSON.
    pub data: String,
    /// Deliver only to subscribers authorized for one of the topics.
    pub private: bool,
    /// The update id; the hub generates one when absent.
    pub id: Option<String>,
    /// The SSE event type (`event:` line), distinct from the JSON `type`.
    pub event_type: Option<String>,
    /// The reconnection delay in milliseconds that subscribers should use.
    pub retry: Option<u64>,
}

impl Update {
    /// An update of `data` to `topics`.
    pub fn new<T: Into<String>>(
        topics: impl IntoIterator<Item = T>,
        data: impl Into<String>,
    ) -> Self {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            data: data.into(),
            ..Self::default()
        }
    }

    /// Marks the update private (or not).
    #[must_use]
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Sets the update id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the SSE event type.
    #[must_use]
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Sets the retry delay in milliseconds.
    #[must_use]
    pub fn retry(mut self, retry_ms: u64) -> Self {
        self.retry = Some(retry_ms);
        self
    }

    /// The `application/x-www-form-urlencoded` body, the same in both protocol generations:
    /// `topic` once per topic in order (the first is the canonical topic, the others its
    /// alternates: one request carries them all), then `data`, `private=on`, `id`, `type`,
    /// `retry` when set.
    pub fn form_body(&self) -> String {
        let mut form =
            url::form_urlencoded::Serializer::new(String::with_capacity(self.data.len() + 64));
        for topic in &self.topics {
            form.append_pair("topic", topic);
        }
        form.append_pair("data", &self.data);
        if self.private {
            form.append_pair("private", "on");
        }
        if let Some(id) = &self.id {
            form.append_pair("id", id);
        }
        if let Some(event_type) = &self.event_type {
            form.append_pair("type", event_type);
        }
        if let Some(retry) = self.retry {
            form.append_pair("retry", &retry.to_string());
        }
        form.finish()
    }
}

/// The well-known path of a hub.
pub const HUB_PATH: &str = "/.well-known/mercure";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_body_repeats_topic_and_encodes_data() {
        let update = Update::new(["orders", "orders/a b"], r#"{"type":"x"}"#)
            .private(true)
            .id("u1")
            .retry(10);
        assert_eq!(
            update.form_body(),
            "topic=orders&topic=orders%2Fa+b&data=%7B%22type%22%3A%22x%22%7D&private=on&id=u1&retry=10"
        );
    }
}
