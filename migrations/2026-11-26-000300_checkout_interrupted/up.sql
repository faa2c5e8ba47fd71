-- Whether an attempt at driving the checkout ever ended without recording its
-- outcome (its worker died, or its write failed): such an attempt may have sent
-- the payment, so the checkout is never given up, only driven on under the
-- same keys. Recording a step gives the claim up; a claim still set when
-- another worker takes the row over (its lease ran out) is the trace of such an
-- attempt, and the takeover sets this flag in the same UPDATE.
ALTER TABLE checkouts ADD COLUMN interrupted boolean NOT NULL DEFAULT false;
