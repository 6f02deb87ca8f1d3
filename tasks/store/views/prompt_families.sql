-- One family per conversation: the earliest non-empty family any prompt set gave it.
--
-- Columns:
--   prompt_id: the conversation
--   family: its family, '(none)' when no prompt set named one
--   text: its final user message, as first stored
create view prompt_families as
select prompt_id,
       coalesce(arg_min(family, created_at) filter (where family is not null), '(none)') as family,
       arg_min(text, created_at) as text
from prompts
group by prompt_id;
