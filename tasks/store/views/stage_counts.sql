-- What each pipeline stage has produced: items in and rows out per stage and model.
--
-- Columns:
--   stage: 'prompts', 'generate', 'critique', 'label (human)', 'label (ai)' or 'merge'
--   model: the generating, critiquing or judge model (NULL where none applies)
--   items_in: distinct inputs: conversations, generations, or pairs
--   rows_out: rows stored (for 'merge': over every preference set)
create view stage_counts as
select 'prompts' as stage, null as model, count(distinct prompt_id) as items_in, count(distinct prompt_id) as rows_out
from prompts
union all
select 'generate', model, count(distinct prompt_id), count(*) from generations group by model
union all
select 'critique', model, count(distinct generation_id), count(*) from critiques group by model
union all
select 'label (human)', null, count(distinct pair_id), count(*) from human_labels
union all
select 'label (ai)', judge_model, count(distinct pair_id), count(*) from ai_labels group by judge_model
union all
select 'merge', null, count(distinct pair_id), count(*) from preferences;
