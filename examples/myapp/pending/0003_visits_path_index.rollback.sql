DROP INDEX visits_path_idx;
