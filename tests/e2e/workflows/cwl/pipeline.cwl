cwlVersion: v1.0
class: Workflow
doc: Two steps - upper-case a file, then number its lines; step 2 reads step 1's output.
inputs:
  text: File
outputs:
  result:
    type: File
    outputSource: number/numbered
steps:
  upper:
    run: upper.cwl
    in:
      text: text
    out: [upper]
  number:
    run: number.cwl
    in:
      text: upper/upper
    out: [numbered]
