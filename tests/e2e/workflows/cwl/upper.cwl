cwlVersion: v1.0
class: CommandLineTool
doc: Step 1 - upper-case a text file.
requirements:
  DockerRequirement:
    dockerPull: localhost/toolship-busybox
baseCommand: [tr, "a-z", "A-Z"]
stdin: $(inputs.text.path)
inputs:
  text:
    type: File
outputs:
  upper:
    type: stdout
stdout: upper.txt
