-- How many labels each source and labeller (annotator or judge model) contributed.
--
-- Columns:
--   source: 'human' or 'ai'
--   labeller: the annotator, or the judge model ('rules' for rule labels)
--   labels: labels stored
--   pairs: distinct pairs labelled
--   prompts: distinct conversations labelled
--   first_label: when the first label was stored
--   last_label: when the latest label was stored
create view label_counts as
select source, labeller, count(*) as labels, count(distinct pair_id) as pairs,
       count(distinct prompt_id) as prompts, min(created_at) as first_label, max(created_at) as last_label
from label_votes
group by source, labeller
order by source, labels desc, labeller;
