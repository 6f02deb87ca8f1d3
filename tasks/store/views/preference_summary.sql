-- Preference sets: per merged set, when it was made, its rows and how many rows each source
-- decided, with the mean target and weight. Newest first.
--
-- Columns:
--   set_id: the preference set (a content hash)
--   created_at: when it was first written
--   rows: its rows
--   human: rows one annotator decided
--   human_majority: rows several annotators' strict majority decided
--   rule: rows a constitution rule decided
--   ai: rows the AI judge decided
--   mean_target: the mean P(chosen better)
--   mean_weight: the mean training weight
create view preference_summary as
with per_set as (
    select set_id, min(created_at) as created_at, count(*) as rows,
           count(*) filter (where decided_by = 'human') as human,
           count(*) filter (where decided_by = 'human-majority') as human_majority,
           count(*) filter (where decided_by = 'rule') as rule,
           count(*) filter (where decided_by = 'ai') as ai,
           avg(target) as mean_target, avg(weight) as mean_weight
    from preferences
    group by set_id
)
select coalesce(s.set_id, p.set_id) as set_id,
       least(s.created_at, p.created_at) as created_at,
       coalesce(p.rows, 0) as rows,
       coalesce(p.human, 0) as human,
       coalesce(p.human_majority, 0) as human_majority,
       coalesce(p.rule, 0) as rule,
       coalesce(p.ai, 0) as ai,
       round(p.mean_target, 4) as mean_target,
       round(p.mean_weight, 4) as mean_weight
from preference_sets s full join per_set p on s.set_id = p.set_id
order by created_at desc, set_id;
