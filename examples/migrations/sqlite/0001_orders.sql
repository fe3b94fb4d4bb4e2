CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE line_items (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    title TEXT NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    line_item_id INTEGER NOT NULL REFERENCES line_items (id),
    selected_coloring_id INTEGER,
    selected_svg_id INTEGER
);
CREATE TABLE coloring_versions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE svg_versions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id),
    status TEXT NOT NULL
);
