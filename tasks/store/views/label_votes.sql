-- Every label's vote, human or AI, without texts: the narrow input of the aggregate views.
--
-- Columns:
--   source: 'human' or 'ai'
--   labeller: the annotator, or the judge model ('rules' for rule labels)
--   pair_id: the pair labelled
--   prompt_id: its conversation
--   vote: 'first', 'second' or 'tie' (the pair's responses in id order)
--   confidence: the annotator's stated confidence; for AI labels greatest(p_a, 1 - p_a)
--   created_at: when the label was stored
--   source_row: the row of the label export it came from (NULL for AI labels)
create view label_votes as
select 'human' as source, annotator as labeller, pair_id, prompt_id,
       vote, confidence, created_at, source_row
from human_labels
union all
select 'ai', judge_model, pair_id, prompt_id,
       vote, greatest(p_a, 1 - p_a), created_at, null
from ai_labels;
