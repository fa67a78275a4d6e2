-- Lending between member organisations (issue 21): which organisations besides their home one
-- may ask a donor, as the donor chose ('home', 'named' with the organisations named, or
-- 'federation'). Donors learned before the choice existed never made it: they are 'home',
-- the contract's default, until their next update says otherwise.
ALTER TABLE donors ADD COLUMN lending_scope text NOT NULL DEFAULT 'home'
    CHECK (lending_scope IN ('home', 'named', 'federation'));
ALTER TABLE donors ADD COLUMN lending_organisations text[] NOT NULL DEFAULT '{}';
