-- The order/image domain of the tests.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL
);
-- No REFERENCES on order_id: the tests need a dangling foreign key to show what an
-- unresolvable context does (legacy schemas have them).
CREATE TABLE line_items (
    id BIGINT PRIMARY KEY,
    order_id TEXT NOT NULL
);
CREATE TABLE images (
    id BIGINT PRIMARY KEY,
    line_item_id BIGINT NOT NULL REFERENCES line_items (id),
    selected_coloring_id BIGINT,
    selected_svg BIGINT
);
CREATE TABLE coloring_versions (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
CREATE TABLE svg_versions (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
CREATE TABLE categories (
    id BIGINT PRIMARY KEY,
    parent_id BIGINT REFERENCES categories (id),
    name TEXT NOT NULL
);
