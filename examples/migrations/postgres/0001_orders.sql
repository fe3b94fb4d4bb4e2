CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE line_items (
    id BIGINT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    title TEXT NOT NULL
);
CREATE TABLE images (
    id BIGINT PRIMARY KEY,
    line_item_id BIGINT NOT NULL REFERENCES line_items (id),
    selected_coloring_id BIGINT,
    selected_svg_id BIGINT
);
CREATE TABLE coloring_versions (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id),
    status TEXT NOT NULL,
    progress BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE svg_versions (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
