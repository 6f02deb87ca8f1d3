-- Human-human agreement: for each two annotators who labelled the same pairs, the share of
-- pairs where they agree and Cohen's kappa over the votes first/second/tie; the '(all)'
-- row pools every annotator pair.
--
-- Columns:
--   annotator_1: the first annotator of the two (by name), '(all)' on the pooled row
--   annotator_2: the second, '(all)' on the pooled row
--   pairs: pairs both labelled
--   agreement: the share of those pairs where their latest votes agree
--   expected_agreement: the agreement their vote shares would give by chance
--   cohen_kappa: (agreement - expected_agreement) / (1 - expected_agreement)
create view human_agreement as
with votes as materialized (
    select pair_id, annotator, vote from human_votes
), both_labelled as (
    select x.annotator as annotator_1, y.annotator as annotator_2, x.vote as vote_1, y.vote as vote_2
    from votes x join votes y on x.pair_id = y.pair_id and x.annotator < y.annotator
), stats as (
    select coalesce(annotator_1, '(all)') as annotator_1,
           coalesce(annotator_2, '(all)') as annotator_2,
           count(*) as pairs,
           avg((vote_1 = vote_2)::int) as agreement,
           avg((vote_1 = 'first')::int) * avg((vote_2 = 'first')::int)
             + avg((vote_1 = 'second')::int) * avg((vote_2 = 'second')::int)
             + avg((vote_1 = 'tie')::int) * avg((vote_2 = 'tie')::int) as expected_agreement
    from both_labelled
    group by grouping sets ((annotator_1, annotator_2), ())
    having count(*) > 0
)
select annotator_1, annotator_2, pairs,
       round(agreement, 4) as agreement,
       round(expected_agreement, 4) as expected_agreement,
       round((agreement - expected_agreement) / nullif(1 - expected_agreement, 0), 4) as cohen_kappa
from stats
order by annotator_1 = '(all)' desc, pairs desc, annotator_1, annotator_2;
