"""Native tests of BoolQ's logic: `python3 -m unittest discover -s scenarios/python/boolq`."""

import json
import os
import unittest

import boolq

HERE = os.path.dirname(os.path.abspath(__file__))


def sample_rows():
    with open(os.path.join(HERE, "sample.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


class ParseTest(unittest.TestCase):
    def test_the_embedded_sample_parses(self):
        problems = boolq.parse_rows(sample_rows())
        self.assertEqual(len(problems), 8)
        self.assertEqual([p[3] for p in problems], ["yes", "yes", "no", "no", "no", "yes", "no", "yes"])
        self.assertEqual(problems[0][0], "1")

    def test_the_three_published_layouts(self):
        google = {"question": "is it", "passage": "P.", "answer": False}
        super_glue = {"question": "is it", "passage": "P.", "idx": 7, "label": 1}
        csv = {"question": "is it", "passage": "P.", "answer": "True"}
        self.assertEqual(boolq.parse_rows([google, super_glue, csv]),
                         [("1", "is it", "P.", "no"), ("7", "is it", "P.", "yes"), ("3", "is it", "P.", "yes")])

    def test_errors_name_the_row_and_field(self):
        good = {"question": "q", "passage": "p", "answer": True}
        cases = [
            ({"passage": "p", "answer": True}, "question"),
            ({"question": "q", "passage": " ", "answer": True}, "passage"),
            ({"question": "q", "passage": "p"}, "answer"),
            ({"question": "q", "passage": "p", "label": 2}, "label"),
            ({"question": 3, "passage": "p", "answer": True}, "question"),
        ]
        for bad, field in cases:
            with self.assertRaises(boolq.ParseError) as caught:
                boolq.parse_rows([good, bad])
            self.assertEqual((caught.exception.row, caught.exception.field), (2, field), bad)
        with self.assertRaises(boolq.ParseError):
            boolq.parse_rows([])


class PromptTest(unittest.TestCase):
    def test_zero_and_few_shot_text(self):
        self.assertEqual(boolq.build_text("P.", "is it", []), "P.\nQuestion: is it?\nAnswer:")
        self.assertEqual(boolq.build_text("P.", "is it?", [("E.", "was it", "no")]),
                         "E.\nQuestion: was it?\nAnswer: no\n\nP.\nQuestion: is it?\nAnswer:")


class ScoreTest(unittest.TestCase):
    def test_reads_the_first_yes_or_no(self):
        self.assertEqual(boolq.extract_answer("Yes, it is."), "yes")
        self.assertEqual(boolq.extract_answer(" no"), "no")
        self.assertEqual(boolq.extract_answer("That is false: nobody knows"), "no")
        self.assertEqual(boolq.extract_answer("Answer: TRUE"), "yes")
        self.assertIsNone(boolq.extract_answer("I cannot say"))

    def test_likelihoods_choose_the_likelier_answer(self):
        self.assertEqual(boolq.choose([-2.0, -0.5]), "yes")
        self.assertEqual(boolq.choose([-0.5, -2.0]), "no")
        with self.assertRaises(ValueError):
            boolq.choose([-1.0])


if __name__ == "__main__":
    unittest.main()
