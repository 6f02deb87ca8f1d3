-- Human majority per labelled pair, each annotator's latest vote counted (human_votes). A pair
-- with one annotator has that annotator's vote as its majority. `charter merge` decides a
-- pair people labelled by the same strict majority (a test holds the two to agree).
--
-- Columns:
--   pair_id: the pair
--   prompt_id: its conversation
--   annotators: annotators who voted on it
--   votes_first: votes for the first response (by id)
--   votes_second: votes for the second response
--   votes_tie: tie votes
--   majority_vote: the vote more annotators gave than any other; NULL when the top votes tie
--   majority_share: the top vote's share of the annotators
create view human_majority as
with counts as (
    select pair_id, any_value(prompt_id) as prompt_id, count(*) as annotators,
           count(*) filter (where vote = 'first') as votes_first,
           count(*) filter (where vote = 'second') as votes_second,
           count(*) filter (where vote = 'tie') as votes_tie
    from human_votes
    group by pair_id
)
select pair_id, prompt_id, annotators, votes_first, votes_second, votes_tie,
       case when votes_first > greatest(votes_second, votes_tie) then 'first'
            when votes_second > greatest(votes_first, votes_tie) then 'second'
            when votes_tie > greatest(votes_first, votes_second) then 'tie'
       end as majority_vote,
       round(greatest(votes_first, votes_second, votes_tie) / annotators, 4) as majority_share
from counts;
