-- A write evaluates the segments again for the subscribers it touched, over
-- all their events of the types the segments read (the membership journal):
-- those are found from the subscriber. (The index of the first schema was
-- dropped for import speed when nothing read events by subscriber.)
CREATE INDEX events_subscriber ON events (subscriber_id, type);
