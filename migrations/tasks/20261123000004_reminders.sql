-- Pending reminders are outbox rows with a later available_at; find a task's quickly.
CREATE INDEX outbox_pending_reminders ON outbox ((payload->>'subject'))
    WHERE published_at IS NULL AND routing_key = 'task.due_soon';
