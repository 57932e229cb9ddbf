-- Error: CREATE INDEX holds SHARE (blocks writes) for the whole build.
CREATE INDEX orders_note ON orders (note);
