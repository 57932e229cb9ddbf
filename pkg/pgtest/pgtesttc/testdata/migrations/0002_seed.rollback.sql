DELETE FROM items WHERE name = 'seed';
