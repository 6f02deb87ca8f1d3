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
select pair_id, annotator, any_value(prompt_id) as prompt_id,
       arg_max(vote, (created_at, source_row, label_id)) as vote
from human_labels
group by pair_id, annotator;
