-- Error: ADD PRIMARY KEY builds its index under ACCESS EXCLUSIVE.
ALTER TABLE audit ADD PRIMARY KEY (id);
