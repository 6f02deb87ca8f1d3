-- Length bias: over decisive labels (first/second) on pairs whose responses differ in length
-- (characters), how often the longer response wins, per source, labeller and method (each
-- annotator's latest vote), plus a pooled '(all)' row per source. Reads the response texts.
--
-- Columns:
--   source: 'human' or 'ai'
--   labeller: the annotator or judge model; '(all)' on a source's pooled row
--   method: 'human', or the AI method; '(all)' on a source's pooled row
--   labels: decisive labels on pairs of different lengths
--   longer_wins_rate: the share where the longer response was chosen
--   mean_length_ratio: the mean chosen/rejected length ratio
create view length_bias as
with human_lengths as (
    select pair_id,
           any_value(case when response_a_id < response_b_id then length(response_a) else length(response_b) end)
             as length_first,
           any_value(case when response_a_id < response_b_id then length(response_b) else length(response_a) end)
             as length_second
    from human_labels
    group by pair_id
), decisive as (
    select 'human' as source, v.annotator as labeller, 'human' as method, v.vote,
           l.length_first, l.length_second
    from human_votes v join human_lengths l using (pair_id)
    where v.vote <> 'tie'
    union all
    select 'ai', judge_model, method, vote,
           case when response_a_id < response_b_id then length(response_a) else length(response_b) end,
           case when response_a_id < response_b_id then length(response_b) else length(response_a) end
    from ai_labels
    where vote <> 'tie'
), sided as (
    select source, labeller, method,
           case when vote = 'first' then length_first else length_second end as chosen_length,
           case when vote = 'first' then length_second else length_first end as rejected_length
    from decisive
    where length_first <> length_second
), stats as (
    select source, labeller, method, grouping(labeller) as pooled,
           count(*) as labels,
           avg((chosen_length > rejected_length)::int) as longer_wins_rate,
           avg(chosen_length / nullif(rejected_length, 0)) as mean_length_ratio
    from sided
    group by grouping sets ((source, labeller, method), (source))
)
select source, coalesce(labeller, '(all)') as labeller, coalesce(method, '(all)') as method, labels,
       round(longer_wins_rate, 4) as longer_wins_rate,
       round(mean_length_ratio, 4) as mean_length_ratio
from stats
order by source, pooled desc, labels desc, labeller, method;
