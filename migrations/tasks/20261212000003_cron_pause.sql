-- A cron template an admin paused: no tick runs until it is resumed (then the schedule
-- continues from that moment: ticks missed while paused do not run).
ALTER TABLE jobs ADD COLUMN cron_paused_at timestamptz;
