"""The AVQA task itself: the 42 answers, the 33 question templates and how questions map onto them."""
