-- The order/image domain of the tests.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL
);
-- No REFERENCES on order_id: the tests need a dangling foreign key to show what an
-- unresolvable context does (legacy schemas have them).
CREATE TABLE line_items (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    line_item_id INTEGER NOT NULL REFERENCES line_items (id),
    selected_coloring_id INTEGER,
    selected_svg INTEGER
);
CREATE TABLE coloring_versions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
CREATE TABLE svg_versions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
CREATE TABLE categories (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES categories (id),
    name TEXT NOT NULL
);
