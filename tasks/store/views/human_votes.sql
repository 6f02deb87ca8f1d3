-- Each annotator's latest vote per pair: a later label (or a later row of the same file)
-- replaces an earlier one; labels stored at once from the same row of different files are
-- ordered by label id, as `charter merge` orders them, so both count the same vote.
--
-- Columns:
--   pair_id: the pair
--   annotator: who voted
--   prompt_id: the pair's conversation
--   vote: the annotator's latest vote: 'first', 'second' or 'tie' (responses in id order)
create view human_votes as
-- pair_id is a hash of prompt_id and the two response ids, so grouping by prompt_id too forms the
-- same groups; as a key it is cheaper than any_value(prompt_id), a string carried per group
-- (about half the time of this view and of human_majority at a million labels).
select pair_id, annotator, prompt_id,
       arg_max(vote, (created_at, source_row, label_id)) as vote
from human_labels
group by pair_id, annotator, prompt_id;
