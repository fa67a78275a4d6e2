-- Retention (issue 19, docs/privacy.md): a finished message's recipient, subject and bodies go
-- 90 days after it finished. The job finds the ones still holding a body by age, from here.
CREATE INDEX deliveries_to_expire ON deliveries (updated_at) WHERE body_text <> '';
