cwlVersion: v1.0
class: CommandLineTool
doc: Step 2 - number the lines of a text file and append a line count.
requirements:
  DockerRequirement:
    dockerPull: localhost/toolship-busybox
  ShellCommandRequirement: {}
arguments:
  - shellQuote: false
    valueFrom: >-
      awk '{ printf "%d: %s\\n", NR, $0 } END { printf "lines=%d\\n", NR }'
      $(inputs.text.path) > numbered.txt
inputs:
  text:
    type: File
outputs:
  numbered:
    type: File
    outputBinding:
      glob: numbered.txt
