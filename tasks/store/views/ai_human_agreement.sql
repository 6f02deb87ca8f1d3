-- AI-human agreement: how often AI labels match the human majority on pairs where it is
-- decisive, overall and per judge model, method, principle and prompt family.
--
-- Columns:
--   dimension: 'overall', 'judge_model', 'method', 'principle' or 'family'
--   value: the judge model, method, principle or family; '(all)' on the overall row
--   labels: AI labels compared
--   pairs: distinct pairs they are on
--   accuracy: the share matching the human majority (an AI tie is a miss)
--   cohen_kappa: Cohen's kappa over the votes first/second/tie, with the expected agreement
--     from the AI's and the humans' vote shares, as in human_agreement
create view ai_human_agreement as
with judged as materialized (
    select v.judge_model, v.method, coalesce(v.principle_id, '(none)') as principle,
           coalesce(f.family, '(none)') as family, v.pair_id, v.ai_vote, v.human_vote, v.correct
    from ai_vs_human v left join prompt_families f using (prompt_id)
), stats as (
    select case when grouping(judge_model) = 0 then 'judge_model'
                when grouping(method) = 0 then 'method'
                when grouping(principle) = 0 then 'principle'
                when grouping(family) = 0 then 'family'
                else 'overall' end as dimension,
           coalesce(judge_model, method, principle, family, '(all)') as value,
           count(*) as labels,
           count(distinct pair_id) as pairs,
           avg(correct::int) as accuracy,
           -- The human majority is never 'tie' here, so the tie term of the expected agreement is 0.
           avg((ai_vote = 'first')::int) * avg((human_vote = 'first')::int)
             + avg((ai_vote = 'second')::int) * avg((human_vote = 'second')::int) as expected_agreement
    from judged
    group by grouping sets ((), (judge_model), (method), (principle), (family))
    having count(*) > 0
)
select dimension, value, labels, pairs,
       round(accuracy, 4) as accuracy,
       round((accuracy - expected_agreement) / nullif(1 - expected_agreement, 0), 4) as cohen_kappa
from stats
order by list_position(['overall', 'judge_model', 'method', 'principle', 'family'], dimension),
         labels desc, value;
