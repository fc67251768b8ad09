-- Which worker holds a running bulk row: only the holder of the current claim may record it.
ALTER TABLE job_items ADD COLUMN claim TEXT;
