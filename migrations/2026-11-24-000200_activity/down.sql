DROP TABLE activity_batches;
DROP TABLE activity_hourly;
DROP FUNCTION activity_hits_ensure_partitions(date, date);
DROP TABLE activity_hits;
