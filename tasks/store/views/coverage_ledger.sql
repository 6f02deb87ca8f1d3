-- Coverage ledger: for every prompt family and label source, how many of the family's
-- prompts carry at least one label. Families nobody labelled show coverage 0.
--
-- Columns:
--   family: the prompt family (prompt_families)
--   source: 'human' or 'ai'
--   prompts: conversations in the family
--   labelled_prompts: of those, how many carry a label from the source
--   labels: the source's labels on the family's conversations
--   coverage: labelled_prompts / prompts
create view coverage_ledger as
with labelled as (
    select source, prompt_id, count(*) as labels from label_votes group by source, prompt_id
), families as (
    select family, count(*) as prompts from prompt_families group by family
), per_family as (
    select f.family, l.source, count(*) as labelled_prompts, sum(l.labels) as labels
    from labelled l join prompt_families f using (prompt_id)
    group by f.family, l.source
)
select f.family, s.source, f.prompts,
       coalesce(p.labelled_prompts, 0) as labelled_prompts,
       coalesce(p.labels, 0) as labels,
       round(coalesce(p.labelled_prompts, 0) / f.prompts, 4) as coverage
from families f cross join (select unnest(['human', 'ai']) as source) s
left join per_family p on p.family = f.family and p.source = s.source
order by coverage, f.family, s.source;
