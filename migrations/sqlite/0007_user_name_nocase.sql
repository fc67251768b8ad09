-- User names are unique regardless of case: `alice` and `Alice` are one name, as the CN rule
-- compares them. (estd checks for such pairs before this runs and refuses to start with
-- their names; ASCII-only names make lower() exact.)
CREATE UNIQUE INDEX users_name_nocase ON users (lower(name));
