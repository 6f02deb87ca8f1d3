-- Disagreements: pairs that two or more annotators labelled differently, most split first.
--
-- Columns:
--   pair_id: the pair
--   prompt_id: its conversation
--   family: the conversation's family (prompt_families)
--   annotators: annotators who voted on it
--   votes_first: votes for the first response (by id)
--   votes_second: votes for the second response
--   votes_tie: tie votes
--   majority_share: the top vote's share of the annotators (lower: more split)
create view disagreements as
select m.pair_id, m.prompt_id, coalesce(f.family, '(none)') as family, m.annotators,
       m.votes_first, m.votes_second, m.votes_tie, m.majority_share
from human_majority m left join prompt_families f using (prompt_id)
where m.annotators >= 2 and greatest(m.votes_first, m.votes_second, m.votes_tie) < m.annotators
order by m.majority_share, m.annotators desc, m.pair_id;
