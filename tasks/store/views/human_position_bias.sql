-- People's position bias: over each annotator's latest decisive vote per pair (as human_votes
-- counts them) whose display order is known (review-bench labels, tool exports that keep
-- left/right), how often the response shown first (on the left) was chosen, per annotator
-- and pooled. 0.5 is no bias; position_consistency measures the judge's.
--
-- Columns:
--   annotator: who labelled; '(all)' on the pooled row
--   labels: decisive votes with a known display order
--   first_shown_rate: the share that chose the response shown first
--   z: (first_shown_rate - 0.5) / sqrt(0.25 / labels); |z| > 2 is unlikely without a bias
create view human_position_bias as
with latest as (
    select annotator, arg_max(choice, (created_at, source_row, label_id)) as choice,
           arg_max(shown_first, (created_at, source_row, label_id)) as shown_first
    from human_labels
    group by pair_id, annotator
), stats as (
    select annotator, grouping(annotator) as pooled, count(*) as labels,
           avg((choice = 'a')::int) as rate
    from latest
    where shown_first is not null and choice in ('a', 'b')
    group by grouping sets ((annotator), ())
    having count(*) > 0
)
select coalesce(annotator, '(all)') as annotator, labels, round(rate, 4) as first_shown_rate,
       round((rate - 0.5) / sqrt(0.25 / labels), 2) as z
from stats
order by pooled desc, labels desc, annotator;
