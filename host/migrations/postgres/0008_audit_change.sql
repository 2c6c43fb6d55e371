-- What a mutating call changed, as JSON (NULL where the handler does not
-- describe it): the state of the thing before and after the call.
ALTER TABLE audit_log ADD COLUMN before_json TEXT;
ALTER TABLE audit_log ADD COLUMN after_json TEXT;
