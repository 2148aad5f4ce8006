-- Who follows a task beyond its owner and assignee (who follow it by default): a row with
-- `following` true is someone who chose to, or commented; false is someone who unfollowed
-- (an owner, an assignee or a commenter who no longer wants to hear of it).
CREATE TABLE task_watchers (
    task_id   uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL,
    following boolean NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, user_id)
);
